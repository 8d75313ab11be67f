package t
deny contains msg if { some u in input.users; not u.admin; msg := concat(" ", ["no", u.name]) }
names := {n | some u in input.users; n := u.name}
