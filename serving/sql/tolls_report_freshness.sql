-- How fresh each merged report is: what its batch part covers (cut-over, publication time) and
-- what its speed part covers (latest landing commit and when it was processed).
with

cutover as (
    select view_name, landing_version
    from {batch}.cutover
    where view_name in ({tolls_views})
),

runs as (
    select view_name, max(published_at) as batch_published_at,
           arg_max(landed_event_count, published_at) as batch_event_count
    from {batch}.runs
    group by view_name
),

progress as (
    select max(landing_version) as speed_landing_version,
           max(processed_at) as speed_processed_at,
           sum(landed_count) as landed_event_count
    from {speed}.tolls_stream_progress
),

final as (
    select
        cutover.view_name as report,
        nullif(cutover.landing_version, -1) as batch_cutover_landing_version,
        runs.batch_published_at,
        coalesce(runs.batch_event_count, 0) as batch_event_count,
        progress.speed_landing_version,
        progress.speed_processed_at,
        progress.landed_event_count,
        round(epoch(now()) - epoch(runs.batch_published_at), 1) as batch_age_seconds,
        round(epoch(now()) - epoch(progress.speed_processed_at), 1) as speed_age_seconds
    from cutover
    left join runs on runs.view_name = cutover.view_name
    cross join progress
)

select * from final
