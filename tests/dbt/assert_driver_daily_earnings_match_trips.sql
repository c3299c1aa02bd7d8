-- Each day's driver earnings add up to that day's fares of trips with a driver.
with

trips as (

    select
        trip_date,
        sum(fare_amount) as fare_amount
    from {{ ref('fct_trips') }}
    where driver_id is not null
    group by trip_date

),

earnings as (

    select
        earning_date,
        sum(gross_fare) as gross_fare
    from {{ ref('fct_driver_daily_earnings') }}
    group by earning_date

)

select
    coalesce(trips.trip_date, earnings.earning_date) as partition_date,
    trips.fare_amount,
    earnings.gross_fare
from trips
full outer join earnings on trips.trip_date = earnings.earning_date
where coalesce(trips.fare_amount, -1) != coalesce(earnings.gross_fare, -1)
