"""Real QGIS (offscreen) with the STARS provider registered, through pytest-qgis."""
import pytest


@pytest.fixture(scope="session")
def stars_provider(qgis_app, qgis_processing):
    from qgis.core import QgsApplication

    from stars_qgis.provider import StarsProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("stars")
    if provider is None:
        provider = StarsProvider()
        registry.addProvider(provider)
    return provider


@pytest.fixture
def run_alg(stars_provider, qgis_new_project):
    """processing.run with a fresh context and feedback; returns (results, context)."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    def run(alg_id, params, feedback=None):
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        return processing.run(alg_id, params, context=context, feedback=feedback or QgsProcessingFeedback()), context

    return run
