import sqlalchemy


def test_postgres_server_answers(postgres_url):
    with sqlalchemy.create_engine(postgres_url).connect() as conn:
        assert conn.execute(sqlalchemy.text("select 1")).scalar() == 1
