-- Run searches filter params and tags by key and value: index them that way.
CREATE INDEX run_params_by_key ON run_params(key, value);
CREATE INDEX run_tags_by_key ON run_tags(key, value);
