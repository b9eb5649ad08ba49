-- OMOP person: one row per MIMIC-III patient. Gender from PATIENTS.gender; race and ethnicity
-- from the patient's first admission's ethnicity via the concept map (0 when unmapped).
with

patients as (
    select subject_id, gender, dob
    from {raw}_patients
),

admissions as (
    select subject_id, admittime, ethnicity
    from {raw}_admissions
),

ethnicity_map as (
    select ethnicity, race_concept_id, ethnicity_concept_id
    from {maps}_ethnicity_to_concept
),

first_ethnicity as (
    select subject_id, ethnicity
    from (
        select subject_id, ethnicity,
               row_number() over (partition by subject_id order by admittime, ethnicity) as n
        from admissions
    )
    where n = 1
),

final as (
    select
        patients.subject_id as person_id,
        case patients.gender when 'F' then 8532 when 'M' then 8507 else 0 end
            as gender_concept_id,
        year(patients.dob) as year_of_birth,
        month(patients.dob) as month_of_birth,
        day(patients.dob) as day_of_birth,
        patients.dob as birth_datetime,
        coalesce(ethnicity_map.race_concept_id, 0) as race_concept_id,
        coalesce(ethnicity_map.ethnicity_concept_id, 0) as ethnicity_concept_id,
        null as location_id,
        null as provider_id,
        null as care_site_id,
        cast(patients.subject_id as string) as person_source_value,
        patients.gender as gender_source_value,
        0 as gender_source_concept_id,
        first_ethnicity.ethnicity as race_source_value,
        0 as race_source_concept_id,
        first_ethnicity.ethnicity as ethnicity_source_value,
        0 as ethnicity_source_concept_id
    from patients
    left join first_ethnicity on first_ethnicity.subject_id = patients.subject_id
    left join ethnicity_map on ethnicity_map.ethnicity = first_ethnicity.ethnicity
)

select * from final
