-- One database per service (run once by the postgres image on an empty volume).
CREATE DATABASE calendar OWNER marketplan;
CREATE DATABASE budget OWNER marketplan;
CREATE DATABASE planner OWNER marketplan;
