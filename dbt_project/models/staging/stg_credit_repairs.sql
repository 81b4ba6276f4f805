{{ stg_latest('credit_repairs') }}
