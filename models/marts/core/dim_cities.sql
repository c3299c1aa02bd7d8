-- One row per city, with its current fare rules (both reference seeds).
with

cities as (

    select * from {{ ref('cities') }}

),

fare_rules as (

    select * from {{ ref('fare_rules') }}

),

final as (

    select
        -- ids
        cast(cities.city_id as string) as city_id,

        -- strings
        cast(cities.city_name as string) as city_name,
        cast(cities.country_code as string) as country_code,
        cast(cities.currency_code as string) as currency_code,
        cast(cities.timezone as string) as timezone,

        -- numerics
        cast(fare_rules.booking_fee as numeric(10, 2)) as booking_fee,
        cast(fare_rules.per_mile as numeric(10, 2)) as per_mile,
        cast(fare_rules.per_minute as numeric(10, 2)) as per_minute,
        cast(fare_rules.minimum_fare as numeric(10, 2)) as minimum_fare,
        cast(fare_rules.cancellation_fee as numeric(10, 2)) as cancellation_fee,

        -- timestamps
        cast(fare_rules.updated_at as timestamp) as fare_rules_updated_at

    from cities
    left join fare_rules on cities.city_id = fare_rules.city_id

)

select * from final
