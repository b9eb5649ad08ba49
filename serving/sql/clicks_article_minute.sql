-- Views and distinct sessions per article per minute, from the merged article views.
with

article_views as (
    select article_id, view_minute, session_id, view_count
    from {main}.clicks_article_views
),

final as (
    select
        article_id,
        view_minute,
        cast(sum(view_count) as bigint) as view_count,
        count(distinct session_id) as session_count
    from article_views
    group by article_id, view_minute
)

select * from final
