-- OMOP care_site: one row per care unit a stay or transfer names (ICUSTAYS, TRANSFERS), with its
-- place of service from the care_site map (0 when unmapped). Ids follow the unit names' order.
with

icustays as (
    select first_careunit, last_careunit
    from {raw}_icustays
),

transfers as (
    select curr_careunit
    from {raw}_transfers
),

care_site_map as (
    select care_site_name, place_of_service_source_value, place_of_service_concept_id
    from {maps}_care_site
    where care_site_type = 'ward'
),

units as (
    select first_careunit as unit from icustays
    union
    select last_careunit from icustays
    union
    select curr_careunit from transfers
),

final as (
    select
        row_number() over (order by units.unit) as care_site_id,
        coalesce(care_site_map.place_of_service_source_value, units.unit) as care_site_name,
        coalesce(care_site_map.place_of_service_concept_id, 0) as place_of_service_concept_id,
        null as location_id,
        units.unit as care_site_source_value,
        care_site_map.place_of_service_source_value as place_of_service_source_value
    from units
    left join care_site_map on care_site_map.care_site_name = units.unit
    where units.unit is not null
)

select * from final
