package t
pairs contains [k, v] if { some k, v in data.roles; v == "admin" }
