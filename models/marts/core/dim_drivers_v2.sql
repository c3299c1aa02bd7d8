{{ config(post_hook="{{ create_latest_version_view() }}") }}
{#-
    Version 2 of the drivers dimension: SCD2 rows, one per driver change.
    Breaking changes from v1: driver_name split into first_name/last_name; the app's
    `tier` replaced by driver_tier, the incentive tier earned by completed trips in the
    28 days up to the end of the row's validity (the latest earning date for current
    rows); vehicle split into vehicle_make/vehicle_model.
-#}
with

driver_versions as (

    select * from {{ ref('int_drivers_versioned') }}

),

daily_earnings as (

    select * from {{ ref('fct_driver_daily_earnings') }}

),

latest_earning_date as (

    select max(earning_date) as as_of_date from daily_earnings

),

windows as (

    select
        driver_versions.*,
        least(
            coalesce(cast(driver_versions.valid_to as date), latest_earning_date.as_of_date),
            latest_earning_date.as_of_date
        ) as window_end_date

    from driver_versions
    cross join latest_earning_date

),

trailing_trips as (

    select
        windows.driver_id,
        windows.valid_from,
        coalesce(sum(daily_earnings.trips_completed), 0) as completed_trips_28d

    from windows
    left join daily_earnings
        on windows.driver_id = daily_earnings.driver_id
        and windows.window_end_date >= daily_earnings.earning_date
        and cast({{ dbt.dateadd('day', -28, 'windows.window_end_date') }} as date)
        < daily_earnings.earning_date
    group by windows.driver_id, windows.valid_from

),

final as (

    select
        -- ids
        cast(windows.driver_id as string) as driver_id,
        cast(windows.city_id as string) as city_id,

        -- strings
        cast(trim({{ dbt.split_part('windows.full_name', "' '", 1) }}) as string) as first_name,
        cast(
            trim(substr(windows.full_name, strpos(windows.full_name, ' ') + 1)) as string
        ) as last_name,
        cast(
            case
                when trailing_trips.completed_trips_28d >= 300 then 'gold'
                when trailing_trips.completed_trips_28d >= 100 then 'silver'
                else 'bronze'
            end as string
        ) as driver_tier,
        cast(windows.vehicle_make as string) as vehicle_make,
        cast(windows.vehicle_model as string) as vehicle_model,

        -- numerics
        cast(windows.rating as numeric(3, 2)) as rating,
        cast(trailing_trips.completed_trips_28d as bigint) as completed_trips_28d,

        -- booleans
        cast(windows.is_current as boolean) as is_current,

        -- timestamps
        cast(windows.valid_from as timestamp) as valid_from,
        cast(windows.valid_to as timestamp) as valid_to,
        cast(windows.loaded_at as timestamp) as loaded_at

    from windows
    inner join trailing_trips
        on windows.driver_id = trailing_trips.driver_id
        and windows.valid_from = trailing_trips.valid_from

)

select * from final
