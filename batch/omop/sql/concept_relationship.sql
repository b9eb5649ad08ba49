-- OMOP concept_relationship: as landed (Athena's CONCEPT_RELATIONSHIP.csv); empty otherwise.
with

concept_relationship as (
    select *
    from {vocab}_concept_relationship
),

final as (
    select * from concept_relationship
)

select * from final
