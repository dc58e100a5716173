FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DATA_DIR=/data
WORKDIR /app

COPY pyproject.toml README.md ./
COPY aggregator aggregator
COPY enrichment enrichment
RUN pip install --no-cache-dir .

COPY manage.py ./
COPY templates templates
COPY static static
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && useradd --system --home /app newsdesk && mkdir -p /data && chown newsdesk /data

USER newsdesk
EXPOSE 8000
# Web: gunicorn. Workers: `docker run IMAGE python manage.py workers` (qcluster, stopped cleanly).
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py setup_schedules && exec gunicorn aggregator.wsgi:application --bind 0.0.0.0:8000 --workers 3 --access-logfile -"]
