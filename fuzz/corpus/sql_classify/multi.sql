begin; insert into t values (1); drop table x, y.z; commit
