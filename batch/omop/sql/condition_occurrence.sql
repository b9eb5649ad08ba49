-- OMOP condition_occurrence: one row per coded diagnosis (DIAGNOSES_ICD), dated by its admission.
-- ICD-9-CM codes ("4019") are looked up in the standard vocabulary as "401.9" (E codes after four
-- characters); the diagnosis' position (seq_num) gives its status through the seq_num map.
with

diagnoses as (
    select row_id, subject_id, hadm_id, seq_num, icd9_code
    from {raw}_diagnoses_icd
),

admissions as (
    select hadm_id, admittime, dischtime
    from {raw}_admissions
),

icd9cm as (
    select concept_code, source_concept_id, standard_concept_id
    from {intermediate}_source_to_standard
    where vocabulary_id = 'ICD9CM'
),

status_map as (
    select seq_num, concept_id
    from {maps}_seq_num_to_concept
),

coded as (
    select
        diagnoses.*,
        case
            when length(icd9_code) <= 3 then icd9_code
            when icd9_code like 'E%' then concat(substr(icd9_code, 1, 4), '.', substr(icd9_code, 5))
            else concat(substr(icd9_code, 1, 3), '.', substr(icd9_code, 4))
        end as icd9_dotted
    from diagnoses
),

final as (
    select
        coded.row_id as condition_occurrence_id,
        coded.subject_id as person_id,
        coalesce(icd9cm.standard_concept_id, 0) as condition_concept_id,
        to_date(admissions.admittime) as condition_start_date,
        admissions.admittime as condition_start_datetime,
        to_date(admissions.dischtime) as condition_end_date,
        admissions.dischtime as condition_end_datetime,
        32821 as condition_type_concept_id,
        coalesce(status_map.concept_id, 0) as condition_status_concept_id,
        null as stop_reason,
        null as provider_id,
        coded.hadm_id as visit_occurrence_id,
        null as visit_detail_id,
        coded.icd9_code as condition_source_value,
        coalesce(icd9cm.source_concept_id, 0) as condition_source_concept_id,
        cast(coded.seq_num as string) as condition_status_source_value
    from coded
    left join admissions on admissions.hadm_id = coded.hadm_id
    left join icd9cm on icd9cm.concept_code = coded.icd9_dotted
    left join status_map on status_map.seq_num = coded.seq_num
)

select * from final
