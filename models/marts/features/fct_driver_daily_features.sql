{%- set partition_field = 'feature_date' -%}
{{
    config(
        materialized='incremental',
        **partition_overwrite_config(partition_field, cluster_by=['driver_id'])
    )
}}
{#-
    Online features of one driver on one day (the driver-day rows of
    fct_driver_daily_earnings), partitioned by feature_date. The rating is the one of the
    driver's profile version in effect at the end of the day. Reads only the scope's
    partitions of fct_driver_daily_earnings.
-#}
{%- set scope = partition_scope(partition_field) -%}
{%- set day_end -%}
    cast({{ dbt.dateadd('day', 1, 'daily_earnings.earning_date') }} as timestamp)
{%- endset -%}

with

daily_earnings as (

    select * from {{ ref('fct_driver_daily_earnings') }}
    where {{ partition_filter('earning_date', scope) }}

),

driver_versions as (

    select * from {{ ref('int_drivers_versioned') }}

),

rated as (

    select
        daily_earnings.driver_id,
        daily_earnings.earning_date,
        daily_earnings.trips_completed,
        daily_earnings.trips_cancelled,
        daily_earnings.completed_fares,
        daily_earnings.gross_fare,
        daily_earnings.miles_driven,
        daily_earnings.seconds_driven,
        driver_versions.rating

    from daily_earnings
    left join driver_versions
        on daily_earnings.driver_id = driver_versions.driver_id
        and driver_versions.valid_from < {{ day_end }}
        and (driver_versions.valid_to is null or driver_versions.valid_to >= {{ day_end }})

),

final as (

    select
        -- ids
        cast(driver_id as string) as driver_id,

        -- numerics
        cast(trips_completed as bigint) as trips_completed,
        cast(trips_cancelled as bigint) as trips_cancelled,
        cast(
            trips_cancelled / nullif(trips_completed + trips_cancelled, 0) as numeric(5, 4)
        ) as cancellation_rate,
        cast(gross_fare as numeric(12, 2)) as gross_earnings,
        cast(completed_fares / nullif(trips_completed, 0) as numeric(10, 2)) as earnings_per_trip,
        cast(miles_driven as numeric(12, 2)) as miles_driven,
        cast(seconds_driven / 3600 as numeric(8, 2)) as hours_driven,
        cast(rating as numeric(3, 2)) as driver_rating,

        -- dates
        earning_date as feature_date

    from rated

)

select * from final
{{ partition_order_by('feature_date') }}
