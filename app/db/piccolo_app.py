"""The one Piccolo app: the top-level migrations/ folder. Piccolo runs the migrations; queries go through
app.db.database.Database."""

from piccolo.conf.apps import AppConfig

from app.config import PROJECT_ROOT

APP_CONFIG = AppConfig(
    app_name="ticketing",
    migrations_folder_path=str(PROJECT_ROOT / "migrations"),
    table_classes=[],
)
