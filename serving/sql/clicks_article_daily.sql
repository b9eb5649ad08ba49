-- Daily popularity: views and distinct sessions per article per day (UTC), ranked within the
-- day by views, from the merged daily popularity.
with

daily as (
    select article_id, view_date, session_id, view_count
    from {main}.clicks_daily_popularity
),

per_article as (
    select
        article_id,
        view_date,
        cast(sum(view_count) as bigint) as view_count,
        count(distinct session_id) as session_count
    from daily
    group by article_id, view_date
),

final as (
    select
        *,
        row_number() over (partition by view_date
                           order by view_count desc, session_count desc, article_id)
            as popularity_rank
    from per_article
)

select * from final
