{{ stg_latest('safety_accidents') }}
