from django.apps import AppConfig


class PipelineConfig(AppConfig):
    name = "truepipe.pipeline"
    label = "pipeline"
    verbose_name = "Pipeline and opportunities"
