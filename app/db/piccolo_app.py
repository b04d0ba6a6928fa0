"""The one Piccolo app: its tables and the top-level migrations/ folder."""

from piccolo.conf.apps import AppConfig

from app.config import PROJECT_ROOT
from app.db.tables import Tenant

APP_CONFIG = AppConfig(
    app_name="ticketing",
    migrations_folder_path=str(PROJECT_ROOT / "migrations"),
    table_classes=[Tenant],
)
