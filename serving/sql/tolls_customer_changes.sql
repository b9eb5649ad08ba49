-- Audit of the customers table from its change data feed: one row per customer added, removed,
-- or whose monthly threshold changed, with who changed it (the commit's userName) and when.
-- A rewrite of the whole table (`lambdalake generate tolls --write-customers`) is in the feed as
-- a delete and an insert of every row: paired here, only the customers it changed are kept.
with

feed as (
    select customer_id, monthly_threshold, _change_type as change_type,
           _commit_version as customer_version
    from {reference}._tolls_customers_feed
),

commits as (
    select customer_version, changed_by, changed_at
    from {reference}._tolls_customers_commits
),

before_change as (
    select customer_version, customer_id, monthly_threshold
    from feed
    where change_type in ('update_preimage', 'delete')
),

after_change as (
    select customer_version, customer_id, monthly_threshold
    from feed
    where change_type in ('update_postimage', 'insert')
),

paired as (
    select
        coalesce(after_change.customer_version, before_change.customer_version)
            as customer_version,
        coalesce(after_change.customer_id, before_change.customer_id) as customer_id,
        case when before_change.customer_id is null then 'insert'
             when after_change.customer_id is null then 'delete'
             else 'update'
        end as change_type,
        before_change.monthly_threshold as old_monthly_threshold,
        after_change.monthly_threshold as new_monthly_threshold
    from after_change
    full join before_change
        on before_change.customer_version = after_change.customer_version
        and before_change.customer_id = after_change.customer_id
),

final as (
    select
        paired.customer_id,
        paired.change_type,
        paired.old_monthly_threshold,
        paired.new_monthly_threshold,
        commits.changed_by,
        commits.changed_at,
        paired.customer_version
    from paired
    left join commits using (customer_version)
    where paired.change_type <> 'update'
        or paired.old_monthly_threshold is distinct from paired.new_monthly_threshold
)

select * from final
