"""The promptlab dashboard: ``promptlab dashboard``, or ``streamlit run app.py --server.address 127.0.0.1``.
It only routes; the pages live in promptlab.dashboard."""

import streamlit as st

from promptlab.dashboard import UNBOUND_MESSAGE, build, compare, export, history, home, insights, judge, run, search, unbound

st.set_page_config(page_title="promptlab", layout="wide")
if unbound():
    st.error(UNBOUND_MESSAGE)
    st.stop()
# Streamlit serves the default page at the root only; /home, the page's name, redirects there.
HOME = st.Page(home.page, title="Home", url_path="start", default=True)
st.navigation(
    [
        HOME,
        st.Page(lambda: st.switch_page(HOME), title="Home", url_path="home", visibility="hidden"),
        st.Page(build.page, title="Build", url_path="build"),
        st.Page(run.page, title="Run", url_path="run"),
        st.Page(search.page, title="Search", url_path="search"),
        st.Page(compare.page, title="Compare", url_path="compare"),
        st.Page(judge.page, title="Judge", url_path="judge"),
        st.Page(insights.page, title="Insights", url_path="insights"),
        st.Page(history.page, title="History", url_path="history"),
        st.Page(export.page, title="Export", url_path="export"),
    ]
).run()
