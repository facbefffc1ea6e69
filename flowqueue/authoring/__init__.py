"""What a flow author writes with: the ``@step`` decorator and ``FlowTask``
(``step``), the ``ctx`` a step gets (``context``), declared awaits (``awaits``),
``Retry`` policies (``retry``) and the flow graph built from the declarations
(``flows``: steps, edges, entry steps, the flow registry of one app).

May import: ``backend`` interfaces (the store a ``FlowContext`` reads), ``model``,
``settings``, ``errors``. It never imports the runtime: a step reaches the engine only
through ``StepHost`` (``app.flowqueue``), and ``FlowContext`` gets its store, its emit
and its awaits handed in.
"""
