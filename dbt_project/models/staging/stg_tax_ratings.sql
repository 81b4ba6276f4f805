{{ stg_latest('tax_ratings') }}
