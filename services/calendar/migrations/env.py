from services.calendar.models import CalendarModel
from shared.migrations import run_migrations

run_migrations(CalendarModel.metadata)
