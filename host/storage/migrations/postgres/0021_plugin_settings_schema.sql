-- WIT 0.2.0 (issue 21): what a plugin says about itself beyond its name and
-- hooks. `wit_version` is the contract the component speaks (every version
-- stored before this migration speaks 0.1.0); `description` and
-- `settings_schema` (JSON Schema text, NULL when the plugin declares none,
-- always for 0.1.0) come from its `describe`, checked at upload. The catalogue
-- keeps its own publisher's description and gains the other two.
-- Keep it in step with ../sqlite/0020_plugin_settings_schema.sql.

ALTER TABLE plugin_versions ADD COLUMN wit_version TEXT NOT NULL DEFAULT '0.1.0';
ALTER TABLE plugin_versions ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE plugin_versions ADD COLUMN settings_schema TEXT;

ALTER TABLE catalogue_plugins ADD COLUMN wit_version TEXT NOT NULL DEFAULT '0.1.0';
ALTER TABLE catalogue_plugins ADD COLUMN settings_schema TEXT;
