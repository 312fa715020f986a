{#- Layers live in plain schemas (staging, intermediate, features), not <target>_<layer>:
    the Dagster assets and downstream readers address them by these fixed names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name if custom_schema_name is not none else target.schema }}
{%- endmacro %}
