-- OMOP visit_occurrence: one row per hospital admission (ADMISSIONS.hadm_id). Visit concept from
-- the admission type, admitted-from and discharged-to from the location maps (0 when unmapped).
with

admissions as (
    select subject_id, hadm_id, admittime, dischtime, admission_type, admission_location,
           discharge_location
    from {raw}_admissions
),

visit_map as (
    select admission_type, visit_concept_id
    from {maps}_admission_type_to_concept
),

admitted_from_map as (
    select admission_location, concept_id
    from {maps}_admission_location_to_concept
),

discharged_to_map as (
    select discharge_location, concept_id
    from {maps}_discharge_location_to_concept
),

final as (
    select
        admissions.hadm_id as visit_occurrence_id,
        admissions.subject_id as person_id,
        coalesce(visit_map.visit_concept_id, 0) as visit_concept_id,
        to_date(admissions.admittime) as visit_start_date,
        admissions.admittime as visit_start_datetime,
        to_date(admissions.dischtime) as visit_end_date,
        admissions.dischtime as visit_end_datetime,
        32817 as visit_type_concept_id,
        null as provider_id,
        null as care_site_id,
        admissions.admission_type as visit_source_value,
        0 as visit_source_concept_id,
        coalesce(admitted_from_map.concept_id, 0) as admitted_from_concept_id,
        admissions.admission_location as admitted_from_source_value,
        coalesce(discharged_to_map.concept_id, 0) as discharged_to_concept_id,
        admissions.discharge_location as discharged_to_source_value,
        lag(admissions.hadm_id) over (
            partition by admissions.subject_id order by admissions.admittime, admissions.hadm_id
        ) as preceding_visit_occurrence_id
    from admissions
    left join visit_map on visit_map.admission_type = admissions.admission_type
    left join admitted_from_map
        on admitted_from_map.admission_location = admissions.admission_location
    left join discharged_to_map
        on discharged_to_map.discharge_location = admissions.discharge_location
)

select * from final
