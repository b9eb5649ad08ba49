-- Merged view: vehicles and revenue per vehicle class per day = batch part (as of its cut-over)
-- + speed part (partials landed after the cut-over), so every event counts once.
with

batch_part as (
    select day, vehicle_class, vehicle_count, revenue
    from {batch}.tolls_daily_class_traffic
),

cutover as (
    select landing_version
    from {batch}.cutover
    where view_name = 'tolls_daily_class_traffic'
),

speed_part as (
    select speed.day, speed.vehicle_class, speed.vehicle_count, speed.revenue
    from {speed}.tolls_daily_class_traffic as speed
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
        day,
        vehicle_class,
        cast(sum(vehicle_count) as bigint) as vehicle_count,
        cast(sum(revenue) as decimal(18, 2)) as revenue
    from unioned
    group by day, vehicle_class
)

select * from final
