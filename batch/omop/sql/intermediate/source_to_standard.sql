-- Source codes to concepts through the standard OMOP vocabulary (CONCEPT, CONCEPT_RELATIONSHIP):
-- one row per (vocabulary, code) with its source concept and the standard concept it maps to.
-- Empty when no vocabulary was landed, so every lookup falls back to concept 0.
with

concept as (
    select concept_id, vocabulary_id, concept_code, standard_concept, invalid_reason
    from {vocab}_concept
),

maps_to as (
    select concept_id_1, concept_id_2
    from {vocab}_concept_relationship
    where relationship_id = 'Maps to' and invalid_reason is null
),

standard as (
    select concept_id
    from concept
    where standard_concept = 'S' and invalid_reason is null
),

final as (
    select
        concept.vocabulary_id,
        concept.concept_code,
        concept.concept_id as source_concept_id,
        min(standard.concept_id) as standard_concept_id
    from concept
    left join maps_to on maps_to.concept_id_1 = concept.concept_id
    left join standard on standard.concept_id = maps_to.concept_id_2
    group by concept.vocabulary_id, concept.concept_code, concept.concept_id
)

select * from final
