# flowqueue: one image for the worker, the HTTP API and Flower (docker-compose.yml).
# The default command is the worker, exactly as the README runs it.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# The library first, built outside /app: a source copy in the working directory would shadow
# the installed package. README.md is the package's readme (pyproject.toml): the build needs it.
COPY pyproject.toml README.md /tmp/src/
COPY flowqueue /tmp/src/flowqueue
RUN pip install '/tmp/src[api,monitor]' && rm -rf /tmp/src

# The project's flows and Celery settings stay in the working directory, where
# `celery -A flowqueue worker` looks for `workers` and `celeryconfig.py` (as Celery looks for -A).
COPY workers ./workers
COPY celeryconfig.py ./

# Celery warns about running as root, and nothing here needs root.
RUN useradd --create-home --uid 10001 --user-group flowqueue
USER flowqueue

EXPOSE 8000 5555
CMD ["celery", "-A", "flowqueue", "worker", "-l", "INFO"]
