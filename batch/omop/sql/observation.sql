-- OMOP observation: each admission's insurance, marital status and religion (ADMISSIONS), with
-- the value's concept from its map and the text kept as value_as_string. What is observed has no
-- concept in the maps, so observation_concept_id is 0 and observation_source_value names it.
with

admissions as (
    select subject_id, hadm_id, admittime, insurance, marital_status, religion
    from {raw}_admissions
),

insurance_map as (
    select insurance as value, max(concept_id) as concept_id
    from {maps}_insurance_to_concept
    group by insurance
),

marital_status_map as (
    select marital_status as value, max(concept_id) as concept_id
    from {maps}_marital_status_to_concept
    group by marital_status
),

religion_map as (
    select religion as value, max(concept_id) as concept_id
    from {maps}_religion_to_concept
    group by religion
),

facts as (
    select subject_id, hadm_id, admittime, 1 as fact_rank, 'insurance' as fact,
           insurance as value, insurance_map.concept_id as value_concept_id
    from admissions
    left join insurance_map on insurance_map.value = admissions.insurance
    where insurance is not null
    union all
    select subject_id, hadm_id, admittime, 2, 'marital_status', marital_status,
           marital_status_map.concept_id
    from admissions
    left join marital_status_map on marital_status_map.value = admissions.marital_status
    where marital_status is not null
    union all
    select subject_id, hadm_id, admittime, 3, 'religion', religion, religion_map.concept_id
    from admissions
    left join religion_map on religion_map.value = admissions.religion
    where religion is not null
),

final as (
    select
        row_number() over (order by hadm_id, fact_rank) as observation_id,
        subject_id as person_id,
        0 as observation_concept_id,
        to_date(admittime) as observation_date,
        admittime as observation_datetime,
        32817 as observation_type_concept_id,
        null as value_as_number,
        value as value_as_string,
        coalesce(value_concept_id, 0) as value_as_concept_id,
        null as qualifier_concept_id,
        null as unit_concept_id,
        null as provider_id,
        hadm_id as visit_occurrence_id,
        null as visit_detail_id,
        fact as observation_source_value,
        0 as observation_source_concept_id,
        null as unit_source_value,
        null as qualifier_source_value,
        value as value_source_value,
        null as observation_event_id,
        null as obs_event_field_concept_id
    from facts
)

select * from final
