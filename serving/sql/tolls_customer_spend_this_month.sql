-- Each customer's cumulative spend in the current month (UTC), batch part + speed part,
-- against the customer's monthly threshold.
with

monthly as (
    select customer_id, month, transaction_count, spend
    from {main}.tolls_customer_monthly_spend
),

customers as (
    select customer_id, monthly_threshold
    from {reference}.tolls_customers
),

this_month as (
    select *
    from monthly
    where month = cast(date_trunc('month', now()) as date)
),

final as (
    select
        this_month.customer_id,
        this_month.month,
        this_month.transaction_count,
        this_month.spend,
        customers.monthly_threshold,
        coalesce(this_month.spend >= customers.monthly_threshold, false) as is_over_threshold
    from this_month
    left join customers on customers.customer_id = this_month.customer_id
)

select * from final
