-- OMOP observation_period: one period per person, from the first to the last date of any of the
-- person's visits and clinical events (death excluded), EHR type (32817).
with

visits as (
    select person_id, visit_start_date as start_date, visit_end_date as end_date
    from {staging}_visit_occurrence
),

visit_details as (
    select person_id, visit_detail_start_date, visit_detail_end_date
    from {staging}_visit_detail
),

conditions as (
    select person_id, condition_start_date, coalesce(condition_end_date, condition_start_date)
    from {staging}_condition_occurrence
),

procedures as (
    select person_id, procedure_date, coalesce(procedure_end_date, procedure_date)
    from {staging}_procedure_occurrence
),

drugs as (
    select person_id, drug_exposure_start_date, drug_exposure_end_date
    from {staging}_drug_exposure
),

measurements as (
    select person_id, measurement_date, measurement_date
    from {staging}_measurement
),

observations as (
    select person_id, observation_date, observation_date
    from {staging}_observation
),

dates as (
    select * from visits
    union all select * from visit_details
    union all select * from conditions
    union all select * from procedures
    union all select * from drugs
    union all select * from measurements
    union all select * from observations
),

final as (
    select
        person_id as observation_period_id,
        person_id,
        min(least(start_date, end_date)) as observation_period_start_date,
        max(greatest(start_date, end_date)) as observation_period_end_date,
        32817 as period_type_concept_id
    from dates
    where person_id is not null and start_date is not null
    group by person_id
)

select * from final
