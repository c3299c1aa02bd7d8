{%- set partition_field = 'earning_date' -%}
{{
    config(
        materialized='incremental',
        **partition_overwrite_config(partition_field, cluster_by=['driver_id'])
    )
}}
{#-
    One row per driver and day with at least one finished trip, partitioned by
    earning_date (the trip_date of the driver's trips). Reads only the scope's
    partitions of fct_trips.
-#}
{%- set scope = partition_scope(partition_field) -%}

with

trips as (

    select * from {{ ref('fct_trips') }}
    where
        {{ partition_filter('trip_date', scope) }}
        and driver_id is not null

),

daily as (

    select
        driver_id,
        trip_date as earning_date,
        sum(case when trip_status = 'completed' then 1 else 0 end) as trips_completed,
        sum(case when trip_status = 'cancelled' then 1 else 0 end) as trips_cancelled,
        sum(
            case when trip_status = 'completed' then fare_amount else 0 end
        ) as completed_fares,
        sum(
            case when trip_status = 'cancelled' then fare_amount else 0 end
        ) as cancellation_fees,
        sum(fare_amount) as gross_fare,
        sum(coalesce(distance_miles, 0)) as miles_driven,
        sum(coalesce(duration_seconds, 0)) as seconds_driven

    from trips
    group by driver_id, trip_date

),

final as (

    select
        -- ids
        cast(driver_id as string) as driver_id,

        -- numerics
        cast(trips_completed as bigint) as trips_completed,
        cast(trips_cancelled as bigint) as trips_cancelled,
        cast(completed_fares as numeric(12, 2)) as completed_fares,
        cast(cancellation_fees as numeric(12, 2)) as cancellation_fees,
        cast(gross_fare as numeric(12, 2)) as gross_fare,
        cast(miles_driven as numeric(12, 2)) as miles_driven,
        cast(seconds_driven as bigint) as seconds_driven,

        -- dates
        earning_date

    from daily

)

select * from final
{{ partition_order_by('earning_date') }}
