-- OMOP drug_exposure: one row per prescription (PRESCRIPTIONS). The drug concept comes from the
-- NDC code through the standard vocabulary, or for a missing/zero NDC from the drug label map;
-- the route from the route map. An open prescription ends on its start date.
with

prescriptions as (
    select row_id, subject_id, hadm_id, startdate, enddate, drug, ndc, dose_val_rx,
           dose_unit_rx, route
    from {raw}_prescriptions
),

ndc as (
    select concept_code, source_concept_id, standard_concept_id
    from {intermediate}_source_to_standard
    where vocabulary_id = 'NDC'
),

label_map as (
    select label, max(concept_id) as concept_id
    from {maps}_prescriptions_ndcisnullzero_to_concept
    group by label
),

route_map as (
    select route, max(concept_id) as concept_id
    from {maps}_route_to_concept
    group by route
),

final as (
    select
        prescriptions.row_id as drug_exposure_id,
        prescriptions.subject_id as person_id,
        coalesce(ndc.standard_concept_id, label_map.concept_id, 0) as drug_concept_id,
        to_date(prescriptions.startdate) as drug_exposure_start_date,
        prescriptions.startdate as drug_exposure_start_datetime,
        to_date(coalesce(prescriptions.enddate, prescriptions.startdate))
            as drug_exposure_end_date,
        coalesce(prescriptions.enddate, prescriptions.startdate) as drug_exposure_end_datetime,
        to_date(prescriptions.enddate) as verbatim_end_date,
        32838 as drug_type_concept_id,
        null as stop_reason,
        null as refills,
        cast(prescriptions.dose_val_rx as double) as quantity,
        null as days_supply,
        null as sig,
        coalesce(route_map.concept_id, 0) as route_concept_id,
        null as lot_number,
        null as provider_id,
        prescriptions.hadm_id as visit_occurrence_id,
        null as visit_detail_id,
        prescriptions.drug as drug_source_value,
        coalesce(ndc.source_concept_id, 0) as drug_source_concept_id,
        prescriptions.route as route_source_value,
        prescriptions.dose_unit_rx as dose_unit_source_value
    from prescriptions
    left join ndc on ndc.concept_code = prescriptions.ndc and prescriptions.ndc != '0'
    left join label_map on label_map.label = prescriptions.drug
    left join route_map on route_map.route = prescriptions.route
)

select * from final
