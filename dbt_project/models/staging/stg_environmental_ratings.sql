{{ stg_latest('environmental_ratings') }}
