select * from a.b join c on true where x in (select 1 from d)
