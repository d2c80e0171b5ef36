-- Declarations are stored as incidents before they are acknowledged (src/incidents/declare.rs): the declaration
-- log of 0006 is no longer written or read.
DROP TABLE IF EXISTS declaration_log;
