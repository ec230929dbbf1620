"""The LLM gateway: one call path (litellm) for every model, the offline analyst included."""

import services.settings  # noqa: F401 - pins litellm's price map to the installed copy first
