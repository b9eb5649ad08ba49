-- OMOP death: one row per patient with a date of death (PATIENTS.dod), type EHR (32817).
with

patients as (
    select subject_id, dod, dod_hosp
    from {raw}_patients
),

final as (
    select
        subject_id as person_id,
        to_date(dod) as death_date,
        dod as death_datetime,
        32817 as death_type_concept_id,
        0 as cause_concept_id,
        null as cause_source_value,
        0 as cause_source_concept_id
    from patients
    where dod is not null
)

select * from final
