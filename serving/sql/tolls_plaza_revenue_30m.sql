-- Merged view: revenue per plaza per 30-minute bucket = batch part (as of its cut-over)
-- + speed part (partials landed after the cut-over), so every event counts once.
with

batch_part as (
    select plaza_id, bucket_start, vehicle_count, revenue
    from {batch}.tolls_plaza_revenue_30m
),

cutover as (
    select landing_version
    from {batch}.cutover
    where view_name = 'tolls_plaza_revenue_30m'
),

speed_part as (
    select speed.plaza_id, speed.bucket_start, speed.vehicle_count, speed.revenue
    from {speed}.tolls_plaza_revenue_30m as speed
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
        plaza_id,
        bucket_start,
        cast(sum(vehicle_count) as bigint) as vehicle_count,
        cast(sum(revenue) as decimal(18, 2)) as revenue
    from unioned
    group by plaza_id, bucket_start
)

select * from final
