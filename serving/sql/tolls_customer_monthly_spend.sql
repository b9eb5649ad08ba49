-- Merged view: spend per customer per month = batch part (as of its cut-over)
-- + speed part (10-minute partials landed after the cut-over), so every event counts once.
with

batch_part as (
    select customer_id, month, transaction_count, spend
    from {batch}.tolls_customer_monthly_spend
),

cutover as (
    select landing_version
    from {batch}.cutover
    where view_name = 'tolls_customer_monthly_spend'
),

speed_part as (
    select
        speed.customer_id,
        cast(date_trunc('month', speed.window_start) as date) as month,
        speed.transaction_count,
        speed.spend
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
        month,
        cast(sum(transaction_count) as bigint) as transaction_count,
        cast(sum(spend) as decimal(18, 2)) as spend
    from unioned
    group by customer_id, month
)

select * from final
