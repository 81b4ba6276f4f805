{{ stg_latest('dishonest_debtors') }}
