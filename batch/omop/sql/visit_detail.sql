-- OMOP visit_detail: one row per ICU stay (ICUSTAYS.icustay_id) inside its hospital admission.
-- Concept from the care_site map of the first care unit, else 32037 (Intensive Care); an open
-- stay ends at its admission's discharge.
with

icustays as (
    select subject_id, hadm_id, icustay_id, first_careunit, last_careunit, intime, outtime
    from {raw}_icustays
),

admissions as (
    select hadm_id, dischtime
    from {raw}_admissions
),

care_sites as (
    select care_site_id, care_site_source_value
    from {staging}_care_site
),

care_site_map as (
    select care_site_name, visit_detail_concept_id
    from {maps}_care_site
    where care_site_type = 'ward'
),

final as (
    select
        icustays.icustay_id as visit_detail_id,
        icustays.subject_id as person_id,
        coalesce(care_site_map.visit_detail_concept_id, 32037) as visit_detail_concept_id,
        to_date(icustays.intime) as visit_detail_start_date,
        icustays.intime as visit_detail_start_datetime,
        to_date(coalesce(icustays.outtime, admissions.dischtime)) as visit_detail_end_date,
        coalesce(icustays.outtime, admissions.dischtime) as visit_detail_end_datetime,
        32817 as visit_detail_type_concept_id,
        null as provider_id,
        care_sites.care_site_id,
        icustays.first_careunit as visit_detail_source_value,
        0 as visit_detail_source_concept_id,
        null as admitted_from_concept_id,
        null as admitted_from_source_value,
        icustays.last_careunit as discharged_to_source_value,
        null as discharged_to_concept_id,
        lag(icustays.icustay_id) over (
            partition by icustays.subject_id order by icustays.intime, icustays.icustay_id
        ) as preceding_visit_detail_id,
        null as parent_visit_detail_id,
        icustays.hadm_id as visit_occurrence_id
    from icustays
    left join admissions on admissions.hadm_id = icustays.hadm_id
    left join care_sites on care_sites.care_site_source_value = icustays.first_careunit
    left join care_site_map on care_site_map.care_site_name = icustays.first_careunit
)

select * from final
