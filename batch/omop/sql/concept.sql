-- OMOP concept: the standard vocabulary's concepts as landed (Athena's CONCEPT.csv), empty when
-- only concept maps were landed.
with

concept as (
    select *
    from {vocab}_concept
),

final as (
    select * from concept
)

select * from final
