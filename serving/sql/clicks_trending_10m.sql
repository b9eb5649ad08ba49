-- Trending articles: views and distinct sessions per article over the last 10 minutes (the
-- current minute and the nine before it, by event time), ranked by views, from the merged
-- article views. Distinct sessions are counted over the whole window, not added up per minute.
with

article_views as (
    select article_id, view_minute, session_id, view_count
    from {main}.clicks_article_views
),

window_bounds as (
    select
        date_trunc('minute', now()) - interval 9 minutes as window_start,
        date_trunc('minute', now()) + interval 1 minute as window_end
),

in_window as (
    select article_views.*
    from article_views
    cross join window_bounds
    where article_views.view_minute >= window_bounds.window_start
      and article_views.view_minute < window_bounds.window_end
),

per_article as (
    select
        article_id,
        cast(sum(view_count) as bigint) as view_count,
        count(distinct session_id) as session_count
    from in_window
    group by article_id
),

final as (
    select
        row_number() over (order by view_count desc, session_count desc, article_id)
            as trending_rank,
        per_article.*,
        window_bounds.window_start,
        window_bounds.window_end
    from per_article
    cross join window_bounds
)

select * from final
