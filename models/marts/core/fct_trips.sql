{%- set partition_field = 'trip_date' -%}
{{
    config(
        materialized='incremental',
        **partition_overwrite_config(partition_field, cluster_by=['city_id', 'driver_id'])
    )
}}
{#-
    One row per finished (completed or cancelled) trip, partitioned by trip_date, the
    date of its `requested` event. The scope (backfill vars, lookback or everything)
    filters the events read; events of the day after the scope are read too, for trips
    requested before midnight that finish after it. A trip without its `requested`
    event or still unfinished has no row yet; a later run picks it up.
-#}
{%- set scope = partition_scope(partition_field) -%}

with

trip_events as (

    select * from {{ ref('stg_rides__trip_events') }}
    where {{ partition_filter('event_at', scope, days_after=1, column_type='timestamp') }}

),

fare_rules as (

    select * from {{ ref('fare_rules') }}

),

trips as (

    select
        trip_id,
        max(case when event_type = 'requested' then rider_id end) as rider_id,
        coalesce(
            max(case when event_type = 'accepted' then driver_id end),
            max(case when event_type in ('completed', 'cancelled') then driver_id end)
        ) as driver_id,
        max(case when event_type = 'requested' then city_id end) as city_id,
        max(case when event_type = 'completed' then distance_miles end) as distance_miles,
        max(case when event_type = 'completed' then duration_seconds end) as duration_seconds,
        coalesce(
            max(case when event_type = 'completed' then surge_multiplier end),
            max(case when event_type = 'requested' then surge_multiplier end),
            1
        ) as surge_multiplier,
        min(case when event_type = 'requested' then event_at end) as requested_at,
        min(case when event_type = 'accepted' then event_at end) as accepted_at,
        min(case when event_type = 'completed' then event_at end) as completed_at,
        min(case when event_type = 'cancelled' then event_at end) as cancelled_at

    from trip_events
    group by trip_id

),

finished as (

    select
        *,
        case
            when completed_at is not null then 'completed'
            when cancelled_at is not null then 'cancelled'
        end as trip_status,
        cast(requested_at as date) as trip_date

    from trips
    where
        requested_at is not null
        and (completed_at is not null or cancelled_at is not null)

),

priced as (

    select
        finished.*,
        case
            when finished.trip_status = 'completed'
                then greatest(
                    fare_rules.minimum_fare,
                    (
                        fare_rules.booking_fee
                        + fare_rules.per_mile * finished.distance_miles
                        + fare_rules.per_minute * finished.duration_seconds / 60.0
                    ) * finished.surge_multiplier
                )
            else fare_rules.cancellation_fee
        end as fare_amount

    from finished
    left join fare_rules on finished.city_id = fare_rules.city_id

),

final as (

    select
        -- ids
        cast(trip_id as string) as trip_id,
        cast(rider_id as string) as rider_id,
        cast(driver_id as string) as driver_id,
        cast(city_id as string) as city_id,

        -- strings
        cast(trip_status as string) as trip_status,

        -- numerics
        cast(round(distance_miles, 2) as numeric(10, 2)) as distance_miles,
        cast(duration_seconds as bigint) as duration_seconds,
        cast(surge_multiplier as numeric(4, 2)) as surge_multiplier,
        cast(round(fare_amount, 2) as numeric(10, 2)) as fare_amount,

        -- dates
        trip_date,

        -- timestamps
        cast(requested_at as timestamp) as requested_at,
        cast(accepted_at as timestamp) as accepted_at,
        cast(completed_at as timestamp) as completed_at,
        cast(cancelled_at as timestamp) as cancelled_at

    from priced
    where {{ partition_filter('trip_date', scope) }}

)

select * from final
{{ partition_order_by('trip_date') }}
