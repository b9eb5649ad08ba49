-- A merged view = batch part (the batch view as of its cut-over) + speed part (the partial rows
-- landed after the cut-over), so every event counts once. One template for every merged view of
-- every domain, filled in from the batch view's spec (`serving.engine.render_view_sql`): its key
-- columns are grouped, its measures added up.
-- This one: {view}, its speed part from {speed_view}.
with

batch_part as (
    select {columns}
    from {batch}.{view}
),

cutover as (
    select landing_version
    from {batch}.cutover
    where view_name = '{view}'
),

speed_part as (
    select {speed_columns}
    from {speed}.{speed_relation} as speed
    cross join cutover
    where speed.landing_version > cutover.landing_version
),

unioned as (
    select * from batch_part
    union all
    select * from speed_part
),

final as (
    select
        {keys},
        {measures}
    from unioned
    group by {keys}
)

select * from final
