import { mount } from 'svelte';
import App from './App.svelte';
import './app.css';
import { repairNavigatorLanguage } from './lib/language';

repairNavigatorLanguage();

const app = mount(App, { target: document.getElementById('app')! });

export default app;
