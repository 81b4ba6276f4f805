-- Donations of D: the donations records plus confirmed self-reports of that kind (reviewed_on <= D).
{{ with_self_reports('donations') }}
