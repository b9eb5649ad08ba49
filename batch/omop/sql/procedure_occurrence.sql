-- OMOP procedure_occurrence: ICD-9 procedures (PROCEDURES_ICD, dated by their admission) and CPT
-- events (CPTEVENTS, dated by chartdate or else their admission). ICD-9 procedure codes are looked
-- up as "36.05"; CPT codes as CPT4, else through the cpt4 map of section headers.
with

icd_procedures as (
    select row_id, subject_id, hadm_id, icd9_code
    from {raw}_procedures_icd
),

cpt_events as (
    select row_id, subject_id, hadm_id, costcenter, chartdate, cpt_cd, sectionheader,
           subsectionheader
    from {raw}_cptevents
),

admissions as (
    select hadm_id, admittime
    from {raw}_admissions
),

vocabulary as (
    select vocabulary_id, concept_code, source_concept_id, standard_concept_id
    from {intermediate}_source_to_standard
    where vocabulary_id in ('ICD9Proc', 'CPT4')
),

cpt4_map as (
    select procedure_source_value, procedure_concept_id
    from {maps}_cpt4_to_concept
),

from_icd as (
    select
        1 as source_rank,
        icd_procedures.row_id,
        icd_procedures.subject_id,
        icd_procedures.hadm_id,
        admissions.admittime as procedure_at,
        icd_procedures.icd9_code as source_value,
        vocabulary.source_concept_id,
        vocabulary.standard_concept_id
    from icd_procedures
    left join admissions on admissions.hadm_id = icd_procedures.hadm_id
    left join vocabulary
        on vocabulary.vocabulary_id = 'ICD9Proc'
        and vocabulary.concept_code = case
            when length(icd_procedures.icd9_code) <= 2 then icd_procedures.icd9_code
            else concat(substr(icd_procedures.icd9_code, 1, 2), '.',
                        substr(icd_procedures.icd9_code, 3))
        end
),

from_cpt as (
    select
        2 as source_rank,
        cpt_events.row_id,
        cpt_events.subject_id,
        cpt_events.hadm_id,
        coalesce(cpt_events.chartdate, admissions.admittime) as procedure_at,
        cpt_events.cpt_cd as source_value,
        vocabulary.source_concept_id,
        coalesce(vocabulary.standard_concept_id, cpt4_map.procedure_concept_id)
            as standard_concept_id
    from cpt_events
    left join admissions on admissions.hadm_id = cpt_events.hadm_id
    left join vocabulary
        on vocabulary.vocabulary_id = 'CPT4' and vocabulary.concept_code = cpt_events.cpt_cd
    left join cpt4_map on cpt4_map.procedure_source_value = concat(
        '[', cpt_events.costcenter, '][', cpt_events.sectionheader, '] ',
        cpt_events.subsectionheader)
),

procedures as (
    select * from from_icd
    union all
    select * from from_cpt
),

final as (
    select
        row_number() over (order by source_rank, row_id) as procedure_occurrence_id,
        subject_id as person_id,
        coalesce(standard_concept_id, 0) as procedure_concept_id,
        to_date(procedure_at) as procedure_date,
        procedure_at as procedure_datetime,
        null as procedure_end_date,
        null as procedure_end_datetime,
        32821 as procedure_type_concept_id,
        0 as modifier_concept_id,
        null as quantity,
        null as provider_id,
        hadm_id as visit_occurrence_id,
        null as visit_detail_id,
        source_value as procedure_source_value,
        coalesce(source_concept_id, 0) as procedure_source_concept_id,
        null as modifier_source_value
    from procedures
)

select * from final
