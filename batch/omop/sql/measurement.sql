-- OMOP measurement: lab results (LABEVENTS, concept from the item's LOINC code), output volumes
-- (OUTPUTEVENTS, concept from the output label map) and microbiology results (MICROBIOLOGYEVENTS,
-- the antibiotic's interpretation as value concept through the resistance map).
with

labevents as (
    select row_id, subject_id, hadm_id, itemid, charttime, value, valuenum, valueuom
    from {raw}_labevents
),

lab_items as (
    select itemid, label, loinc_code
    from {raw}_d_labitems
),

outputevents as (
    select row_id, subject_id, hadm_id, charttime, itemid, value, valueuom
    from {raw}_outputevents
),

microbiology as (
    select row_id, subject_id, hadm_id, chartdate, charttime, spec_type_desc, org_name, ab_name,
           interpretation
    from {raw}_microbiologyevents
),

loinc as (
    select concept_code, source_concept_id, standard_concept_id
    from {intermediate}_source_to_standard
    where vocabulary_id = 'LOINC'
),

unit_map as (
    select unit, max(concept_id) as concept_id
    from {maps}_lab_unit_to_concept
    group by unit
),

output_map as (
    select item_id, max(concept_id) as concept_id
    from {maps}_output_label_to_concept
    group by item_id
),

resistance_map as (
    select interpretation, max(value_as_concept_id) as concept_id
    from {maps}_resistance_to_concept
    group by interpretation
),

from_labs as (
    select
        1 as source_rank, labevents.row_id, labevents.subject_id, labevents.hadm_id,
        labevents.charttime as measured_at,
        loinc.standard_concept_id as concept_id,
        loinc.source_concept_id,
        labevents.valuenum as value_as_number,
        cast(null as int) as value_as_concept_id,
        labevents.valueuom as unit_source_value,
        coalesce(lab_items.label, cast(labevents.itemid as string)) as source_value,
        labevents.value as value_source_value
    from labevents
    left join lab_items on lab_items.itemid = labevents.itemid
    left join loinc on loinc.concept_code = lab_items.loinc_code
),

from_outputs as (
    select
        2, outputevents.row_id, outputevents.subject_id, outputevents.hadm_id,
        outputevents.charttime,
        output_map.concept_id,
        cast(null as int),
        outputevents.value,
        cast(null as int),
        outputevents.valueuom,
        cast(outputevents.itemid as string),
        cast(outputevents.value as string)
    from outputevents
    left join output_map on output_map.item_id = outputevents.itemid
),

from_microbiology as (
    select
        3, microbiology.row_id, microbiology.subject_id, microbiology.hadm_id,
        coalesce(microbiology.charttime, microbiology.chartdate),
        cast(null as int),
        cast(null as int),
        cast(null as double),
        resistance_map.concept_id,
        cast(null as string),
        concat_ws('|', microbiology.spec_type_desc, microbiology.org_name, microbiology.ab_name),
        microbiology.interpretation
    from microbiology
    left join resistance_map on resistance_map.interpretation = microbiology.interpretation
),

measurements as (
    select * from from_labs
    union all
    select * from from_outputs
    union all
    select * from from_microbiology
),

final as (
    select
        row_number() over (order by source_rank, row_id) as measurement_id,
        measurements.subject_id as person_id,
        coalesce(measurements.concept_id, 0) as measurement_concept_id,
        to_date(measurements.measured_at) as measurement_date,
        measurements.measured_at as measurement_datetime,
        null as measurement_time,
        32817 as measurement_type_concept_id,
        null as operator_concept_id,
        measurements.value_as_number,
        measurements.value_as_concept_id,
        coalesce(unit_map.concept_id, 0) as unit_concept_id,
        null as range_low,
        null as range_high,
        null as provider_id,
        measurements.hadm_id as visit_occurrence_id,
        null as visit_detail_id,
        measurements.source_value as measurement_source_value,
        coalesce(measurements.source_concept_id, 0) as measurement_source_concept_id,
        measurements.unit_source_value,
        null as unit_source_concept_id,
        measurements.value_source_value,
        null as measurement_event_id,
        null as meas_event_field_concept_id
    from measurements
    left join unit_map on unit_map.unit = measurements.unit_source_value
)

select * from final
