-- Threshold alerts, one per customer per month per threshold, newest first.
with

alerts as (
    select alert_id, customer_id, month, threshold, spend, event_time, transaction_id, alerted_at
    from {speed}.tolls_alerts
),

final as (
    select * from alerts
    order by alerted_at desc, customer_id
)

select * from final
