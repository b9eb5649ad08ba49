-- Merged view: spend per customer per 10-minute window = batch part (as of its cut-over)
-- + speed part (partials landed after the cut-over), so every event counts once.
with

batch_part as (
    select customer_id, window_start, window_end, transaction_count, spend
    from {batch}.tolls_customer_spend_10m
),

cutover as (
    select landing_version
    from {batch}.cutover
    where view_name = 'tolls_customer_spend_10m'
),

speed_part as (
    select speed.customer_id, speed.window_start, speed.window_end,
           speed.transaction_count, speed.spend
    from {speed}.tolls_customer_spend_10m as speed
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
        customer_id,
        window_start,
        window_end,
        cast(sum(transaction_count) as bigint) as transaction_count,
        cast(sum(spend) as decimal(18, 2)) as spend
    from unioned
    group by customer_id, window_start, window_end
)

select * from final
